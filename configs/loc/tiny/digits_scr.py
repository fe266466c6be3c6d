# The localisation demo's single-class regression (SCR) net: digits_pcr.py with one box
# (4 outputs) shared by all classes.
_base_ = ['./digits_pcr.py']
model = dict(regression='single_class')
