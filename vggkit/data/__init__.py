"""vggkit.data"""
