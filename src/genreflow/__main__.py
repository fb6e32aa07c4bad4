import sys

from genreflow.cli import main

sys.exit(main())
