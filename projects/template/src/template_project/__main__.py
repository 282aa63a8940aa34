from litforge import run
from template_project.cli import project

if __name__ == "__main__":
    run(project)
