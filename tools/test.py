import sys
from vggkit.evaluation.test_tool import main
sys.exit(main())
