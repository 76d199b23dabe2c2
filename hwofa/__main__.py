import sys

from hwofa.cli import main

sys.exit(main())
