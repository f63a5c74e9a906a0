; Inno Setup script for Quantdesk (Inno Setup 6). Built by `python packaging/build.py windows`,
; which passes the values below on the command line:
;   iscc /DAppVersion=0.1.0 /DSourceDir=dist\quantdesk /DOutputDir=dist
;        /DOutputBase=quantdesk-0.1.0-windows-x86_64-setup /DIconFile=build\icons\quantdesk.ico quantdesk.iss
; The installer copies the PyInstaller onedir bundle, adds a Start-menu entry (and, if asked, a
; desktop one) for quantdesk-gui.exe, and registers an uninstaller. Per-user or all-users: the
; user picks (per-user needs no administrator rights). Uninstalling removes the program only:
; models and settings in the user's data folder (%LOCALAPPDATA%\Quantdesk) are kept.

#ifndef AppVersion
  #error Pass /DAppVersion=... (packaging/build.py does)
#endif
#ifndef SourceDir
  #error Pass /DSourceDir=<the onedir bundle> (packaging/build.py does)
#endif
#ifndef OutputDir
  #define OutputDir "."
#endif
#ifndef OutputBase
  #define OutputBase "quantdesk-" + AppVersion + "-windows-x86_64-setup"
#endif

[Setup]
; The AppId identifies the app across versions (upgrades, uninstall): never change it.
AppId={{0650D95A-44DB-4C69-A1E5-F06B09F436DC}
AppName=Quantdesk
AppVersion={#AppVersion}
AppVerName=Quantdesk {#AppVersion}
AppPublisher=Quantdesk developers
DefaultDirName={autopf}\Quantdesk
DefaultGroupName=Quantdesk
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog commandline
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir={#OutputDir}
OutputBaseFilename={#OutputBase}
#ifdef IconFile
SetupIconFile={#IconFile}
#endif
UninstallDisplayIcon={app}\quantdesk-gui.exe
UninstallDisplayName=Quantdesk {#AppVersion}
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
CloseApplications=yes

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Quantdesk"; Filename: "{app}\quantdesk-gui.exe"; Comment: "Run, quantize and measure local language models"
Name: "{group}\{cm:UninstallProgram,Quantdesk}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Quantdesk"; Filename: "{app}\quantdesk-gui.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\quantdesk-gui.exe"; Description: "{cm:LaunchProgram,Quantdesk}"; Flags: nowait postinstall skipifsilent

