from litforge import run
from segmentation_demo.cli import main

if __name__ == "__main__":
    run(main)
