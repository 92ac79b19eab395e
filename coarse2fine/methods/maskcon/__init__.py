"""MaskCon and its family (SelfCon, Grafit, SupCon, CoIns, SupCE, SupFINE)."""
