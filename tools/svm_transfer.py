import sys
from vggkit.transfer.svm_tool import main
sys.exit(main())
