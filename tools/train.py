import sys
from vggkit.engine.train import main
sys.exit(main())
