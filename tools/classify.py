import sys
from vggkit.commands.classify import main
sys.exit(main())
