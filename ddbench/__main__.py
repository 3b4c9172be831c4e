from ddbench.cli.app import main

main()
