import sys
from vggkit.commands.weights import main
sys.exit(main())
