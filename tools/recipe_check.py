import sys
from vggkit.commands.recipe_check import main
sys.exit(main())
