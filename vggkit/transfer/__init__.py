"""vggkit.transfer"""
