import sys

from hamnet.cli import main

sys.exit(main())
