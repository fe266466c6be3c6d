import sys
from vggkit.commands.export import main
sys.exit(main())
