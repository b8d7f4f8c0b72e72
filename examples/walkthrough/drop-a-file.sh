api=${LORAHUB_API:-http://localhost:7071/api}
key=${LORAHUB_KEY:-local}
lorahub=${LORAHUB:-"dotnet run --project src/LoraHub.Cli -c Release --"}
hub=${LORAHUB_HUB:-UseDevelopmentStorage=true}
cat examples/walkthrough/yes-no.json                                       # the settings (sidecar), uploaded first
$lorahub hub push --hub "$hub" --examples examples/walkthrough/yes-no.jsonl   # uploads yes-no.json, then yes-no.jsonl
id=yes-no-$( (cat examples/walkthrough/yes-no.jsonl; printf '\0'; cat examples/walkthrough/yes-no.json) | sha256sum | cut -c1-16)
echo $id                                                                   # the instance id: task + sha256(examples, 0, sidecar)
until curl -s -H "x-functions-key: $key" $api/compositions/$id | grep -qE '"status":"(Completed|Failed|Terminated)"'; do sleep 2; done
curl -sw '\n' -H "x-functions-key: $key" $api/compositions/$id                   # "status":"Completed", modules lora_0 and lora_2
curl -sw '\n' -H "x-functions-key: $key" $api/adapters/yes-no                    # "optimizer":"cmaes", "budget":20, ...
