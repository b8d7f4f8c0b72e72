# From the repository's root, with Azurite and the app running (see "Run it locally"). LORAHUB_* override the defaults.
lorahub=${LORAHUB:-"dotnet run --project src/LoraHub.Cli -c Release --"}
hub=${LORAHUB_HUB:-UseDevelopmentStorage=true}
$lorahub hub push --hub "$hub" --model tests/fixtures/t5/tiny-t5          # models/tiny-t5: a random tiny T5
$lorahub hub push --hub "$hub" --modules tests/fixtures/t5/adapters       # modules/lora_0, lora_1, lora_2
