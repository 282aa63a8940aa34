from cifar10_demo.cli import main
from litforge import run

if __name__ == "__main__":
    run(main)
