import sys
from vggkit.commands.localise import main
sys.exit(main())
