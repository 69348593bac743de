import sys

from netclock.cli.main import main

sys.exit(main())
