from suanli.cli.app import main

main()
