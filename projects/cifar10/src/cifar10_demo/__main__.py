from cifar10_demo.cli import main

main()
