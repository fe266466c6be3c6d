import sys
from vggkit.data.stats import main
sys.exit(main())
