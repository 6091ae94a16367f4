import sys

from edge_svc.server import main

sys.exit(main())
