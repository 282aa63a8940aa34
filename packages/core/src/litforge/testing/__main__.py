from litforge.run.cli import run
from litforge.testing.images import main

if __name__ == "__main__":
    run(main)
