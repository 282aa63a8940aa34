from litforge import run
from template_project.cli import main

if __name__ == "__main__":
    run(main)
