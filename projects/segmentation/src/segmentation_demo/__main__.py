from litforge import run
from segmentation_demo.cli import project

if __name__ == "__main__":
    run(project)
