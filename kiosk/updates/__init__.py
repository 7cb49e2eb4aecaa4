"""Model updates a city can trust: signed with TUF, installed atomically, checked before they go live.

``repository``: the publisher's side (keys, signing, a static repository).
``client``: the kiosk fetching through tuf's ngclient with the image's root.
``store``: the data partition's model folders and the links that choose one.
``canary``: reference photos the new model must answer as published.
``watcher``: the running kiosk picking up a switched model between decisions.
``cli``: ``kiosk model keys|publish|refresh|update|status|rollback``.
"""
