import sys

from client.fleet.fleet import main

sys.exit(main())
