import sys

from gendiag.cli import main

sys.exit(main())
