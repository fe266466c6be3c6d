import sys
from vggkit.commands.transfer import main
sys.exit(main())
