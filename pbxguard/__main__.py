import sys

from pbxguard.cli import main

sys.exit(main())
