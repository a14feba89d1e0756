"""The ARM twin: the slice of Azure Resource Manager that runbooks, checks and the Azure
SDKs use against a lab, one module per resource provider so the layout shows what it serves.

    app                 the WSGI application: auth, routing, api-versions, errors, request ids
    conventions         ARM's shared conventions (error bodies, api-versions, scopes)
    provider            what a resource provider module gives the app (its routes)
    managed_identity    the token endpoint DefaultAzureCredential and az --identity ask
    access_token        the JWTs it hands out (the lab's tenant; signed with the lab token)
    metadata            the cloud metadata az cloud register reads (/metadata/endpoints)
    resources           Microsoft.Resources: the lab's subscription and resource group
    lro                 ARM's long-running operation protocol (202, polling, results)
    operations          the operations' records and threads
    compute             Microsoft.Compute: VMs, power, extensions
    compute_documents   Microsoft.Compute's JSON documents
    extensions          VM extensions as ARM names them, and the work of a delete
    power               power states and actions (Docker)
    network             Microsoft.Network: the VMs' NICs and NSGs, security rules
    network_documents   Microsoft.Network's JSON documents
    network_rules       security rules as Azure validates them; the default rules
    network_store       the NSG rules the twin keeps (JSON in its container)
    network_firewall    the VMs' outbound NSG rules held in the host's DOCKER-USER chain
    support             Microsoft.Support: the service catalog, support tickets, communications
    support_documents   Microsoft.Support's JSON documents and the lab's service catalog
    support_requests    a ticket's create request as Azure checks it
    support_engineer    Microsoft's side of a case: check the package it names, roll back
    fabric              the fabric's control API, the twin's source of truth
    main                the process: ``python3 -m lab.platform.arm.main``

Runs inside its own container on Debian's Python (stdlib, Werkzeug, ``docker``), with
nothing from ``lab`` outside :mod:`lab.platform`.
"""
