"""vggkit.evaluation"""
