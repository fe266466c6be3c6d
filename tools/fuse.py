import sys
from vggkit.commands.fuse import main
sys.exit(main())
