import sys
from vggkit.models.convert import main
sys.exit(main())
