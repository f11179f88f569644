"""The script NVFlare's ``ScriptRunner`` runs at every site (:func:`pipeline.federated.site.main`)."""

from pipeline.federated.site import main

if __name__ == "__main__":
    main()
