from rlrun.bench.cli import main

main()
