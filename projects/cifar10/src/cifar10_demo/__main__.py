from cifar10_demo.cli import project
from litforge import run

if __name__ == "__main__":
    run(project)
