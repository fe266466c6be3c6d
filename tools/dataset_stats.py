import sys
from vggkit.commands.stats import main
sys.exit(main())
