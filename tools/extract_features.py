import sys
from vggkit.features.extract_tool import main
sys.exit(main())
