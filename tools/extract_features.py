import sys
from vggkit.commands.extract import main
sys.exit(main())
