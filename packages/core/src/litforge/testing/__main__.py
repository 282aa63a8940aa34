from litforge.command import run
from litforge.testing.images import project

if __name__ == "__main__":
    run(project)
