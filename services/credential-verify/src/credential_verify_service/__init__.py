"""学历/证书核验: CHSI degree verification and certificate checks."""
