"""免考申请: the ExemptionApplication aggregate, catalogue, windows, candidate portal."""
