from mlffbench.cli import main

main()
