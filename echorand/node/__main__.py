"""`python -m echorand.node`: the `echorand node` command."""

import sys

from echorand.node.launch import main

sys.exit(main())
