import sys
from vggkit.commands.convert import main
sys.exit(main())
