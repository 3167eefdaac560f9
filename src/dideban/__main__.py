from dideban.cli import main

main()
