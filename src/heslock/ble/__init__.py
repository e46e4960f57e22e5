"""heslock.ble — shared Bluetooth LE plumbing on Google's bumble stack (no party logic).

Used by the BSLD simulator (peripheral side), the BGW and the RAC (central side)::

    virtual    VirtualLink: bumble Devices on one in-process LocalLink
    hub        RadioHub: one LocalLink shared by several processes over TCP (HCI per radio)
    transport  LinkSpec + open_radio(): ``local``, ``hub:HOST:PORT`` or a real HCI transport
    gatt       FrameService: the maker's GATT frame service on a peripheral
    central    FrameCentral / FrameLink: connect, discover, subscribe, request/answer
    errors     BleError and its subclasses

It imports the pure protocol core (maker profiles, advertisement codec) and never a party
(tests/unit/test_boundaries.py).
"""
