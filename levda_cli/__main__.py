from levda_cli.cli.main import run

run()
