"""``python -m panosamic.cli ...``: the same as the ``panosamic`` program."""

import sys

from panosamic.cli import main

sys.exit(main())
