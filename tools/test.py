import sys
from vggkit.commands.test import main
sys.exit(main())
