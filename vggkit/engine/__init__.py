"""vggkit.engine"""
