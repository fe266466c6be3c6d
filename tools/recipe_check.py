import sys
from vggkit.engine.recipe_check import main
sys.exit(main())
