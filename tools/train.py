import sys
from vggkit.commands.train import main
sys.exit(main())
